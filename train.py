"""Train and test an emotion classifier: ``python train.py [group=option] [key=value]`` (= ``ser-train``)."""

from ser_lightning.cli.main import train as main

if __name__ == "__main__":
    main()

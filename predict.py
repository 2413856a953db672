"""Classify audio files: ``python predict.py input=FILE_OR_DIR [ckpt_path=MODEL] [output=DIR]`` (= ``ser-predict``)."""

from ser_lightning.cli.main import predict as main

if __name__ == "__main__":
    main()

"""Pretrained speech encoders (plain nn.Modules) and the head parts that sit on them."""

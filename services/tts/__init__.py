import os

# oneDNN (CPU convolutions) keeps 1024 convolution set-ups by default: the codec's ~90 convolutions
# times the batch shapes a busy engine decodes overflow it, and every miss costs milliseconds of
# set-up on CPU. It reads this once, at its first convolution, so it is set on import.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16384")

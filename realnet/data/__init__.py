"""Images: :mod:`realnet.data.datasets` (shipped datasets and image folders read from disk as uint8
tensors), :mod:`realnet.data.pools` (the SSL pool, the batch order of every step, a run's
images), :mod:`realnet.data.torchdata` (a user's own ``torch.utils.data.Dataset`` as a run's
images) and :mod:`realnet.data.augment` (the on-device augmentation with its explicit
generator)."""

"""Networks: :mod:`realnet.nets.resnet` (realnet's own ResNets at any width and stem),
:mod:`realnet.nets.backbones` (a trunk by name: realnet's own, torchvision's, or a user module),
:mod:`realnet.nets.norms` (BatchNorm / GroupNorm + weight standardisation) and
:mod:`realnet.nets.ssl_model` (online encoder, predictor, target, prototypes)."""

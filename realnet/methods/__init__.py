"""SSL methods and predictors: :mod:`realnet.methods.registry` (one entry per method: BYOL,
SimSiam, SimCLR, SwAV), :mod:`realnet.methods.losses` (BYOL's cosine and the L2 loss),
:mod:`realnet.methods.contrastive` (NT-Xent, Sinkhorn, SwAV's losses),
:mod:`realnet.methods.predictors` (one registry of predictors: learned or set from ``F``),
:mod:`realnet.methods.directset` (the DirectPred / DirectCopy rule on torch tensors) and
:mod:`realnet.methods.ema` (the target's EMA and its momentum schedule)."""

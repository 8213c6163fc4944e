"""Real training: ResNet BYOL / SimSiam with learned or directly-set predictors (DirectPred,
DirectCopy, ...), on GPU when there is one and at small scale on CPU."""

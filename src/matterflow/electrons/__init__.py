"""ML surrogate for DFT (MALA-like): grid descriptors -> neural network -> LDOS -> observables."""

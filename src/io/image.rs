//! Images for predict: decode, grey, invert, fit and centre as MNIST digits were.

"""nextword's language model. The modules at this level are what the service runs: the network
(rnn), its words (vocab, tokenizers), its files (checkpoint), the one reading of a text
(scoring), one sequence's generation (decoding, sampling), the cache pointer (pointer_cache) and
the batched step over rows (runner). `model.train` holds what only training uses and
`model.evaluate` the offline evaluation tools; the service imports neither.

Importing the package bounds the CPU kernels' cache of compiled shapes (model/allocator.py), so
that no process that runs the model holds one kernel for each of a long split's shapes."""

from model.allocator import bound_kernel_cache

bound_kernel_cache()

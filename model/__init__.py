"""nextword's offline half: tokenizers, vocabulary, corpora, the recurrent network, training."""

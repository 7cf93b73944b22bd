"""Weight averaging: the running mean of the weights over the steps folded in, swapped in only
inside its block, and rebuilt exactly from a snapshot's tensors."""

import torch

from model.train.averaging import WeightAverage


def linear(value: float) -> torch.nn.Linear:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(value)
    return layer


def set_to(layer: torch.nn.Linear, value: float) -> None:
    with torch.no_grad():
        layer.weight.fill_(value)


def test_the_average_is_the_mean_of_the_weights_after_each_update():
    layer = linear(0.0)
    average = WeightAverage(layer)
    for value in (1.0, 2.0, 6.0):
        set_to(layer, value)
        average.update()
    assert average.count == 3
    assert torch.allclose(average.means[0], torch.full((1, 2), 3.0))


def test_the_averaged_weights_are_in_the_model_only_inside_the_block():
    layer = linear(1.0)
    average = WeightAverage(layer)
    set_to(layer, 3.0)
    average.update()
    set_to(layer, 5.0)
    average.update()
    with average.swapped_in():
        assert torch.all(layer.weight == 4.0)
    assert torch.all(layer.weight == 5.0)


def test_an_average_rebuilt_from_its_tensors_continues_the_same_mean():
    layer = linear(2.0)
    average = WeightAverage(layer)
    average.update()
    saved = {name: mean.clone() for name, mean in average.tensors().items()}  # as on disk
    rebuilt = WeightAverage.from_tensors(layer, saved, average.count)
    set_to(layer, 8.0)
    average.update()
    rebuilt.update()
    assert torch.equal(rebuilt.means[0], average.means[0])
    assert torch.allclose(rebuilt.means[0], torch.full((1, 2), 5.0))

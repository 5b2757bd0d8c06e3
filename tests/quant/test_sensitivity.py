"""The neighbourhood walk both the ONNX and the PT2E sensitivity analyses use."""

from edgekit.quant.sensitivity import neighbourhoods

# conv1 -> relu -> reshape -> conv2 -> conv3 ; conv2 -> add (not a pass-through) -> conv4
EDGES = {"conv1": ["relu"], "relu": ["reshape"], "reshape": ["conv2"], "conv2": ["conv3", "add"],
         "add": ["conv4"], "conv3": [], "conv4": []}
PASS = {"relu", "reshape"}
SITES = ["conv1", "conv2", "conv3", "conv4"]


def _inputs(node):
    return [p for p, users in EDGES.items() if node in users]


def test_a_site_reaches_its_producers_and_consumers_through_pass_through_ops():
    near = neighbourhoods(SITES, _inputs, EDGES.__getitem__, PASS.__contains__, depth=4)
    assert near["conv2"] == ["conv1", "conv2", "conv3"]  # not conv4: `add` is an op of its own
    assert near["conv1"] == ["conv1", "conv2"]
    assert near["conv4"] == ["conv4"]


def test_the_walk_stops_at_its_depth():
    near = neighbourhoods(SITES, _inputs, EDGES.__getitem__, PASS.__contains__, depth=1)
    assert near["conv1"] == ["conv1"]  # relu, then reshape: two pass-through nodes

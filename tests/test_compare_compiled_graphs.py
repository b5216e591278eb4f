"""bench/compare_compiled_graphs.py: graphs that differ only in names compare equal; a changed op does not."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "compare_compiled_graphs.py"
spec = importlib.util.spec_from_file_location("compare_compiled_graphs", SCRIPT)
compare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare)

GRAPH = """
def forward(self, L_x_ : torch.Tensor, L_w_ : torch.nn.parameter.Parameter):
    l_x_ = L_x_
    l_w_ = L_w_
    conv2d = torch.conv2d(l_x_, l_w_, None, (1, 1), (1, 1), (1, 1), 1);  l_x_ = l_w_ = None
    out = conv2d.contiguous(memory_format = torch.channels_last);  conv2d = None
    return (out,)
"""


def test_names_and_signature_order_do_not_count():
    renamed = (GRAPH.replace("L_x_ : torch.Tensor, L_w_ : torch.nn.parameter.Parameter",
                             "L_w_ : torch.nn.parameter.Parameter, L_x_ : torch.Tensor")
               .replace("conv2d", "conv2d_7").replace("torch.conv2d_7", "torch.conv2d").replace("out", "y"))
    assert compare.operations(renamed) == compare.operations(GRAPH)
    assert compare.operations(GRAPH) == ["torch.conv2d(V, V, None, (1, 1), (1, 1), (1, 1), 1)",
                                         "V.contiguous(V = torch.channels_last)"]


def test_a_changed_or_missing_op_counts():
    other_layout = GRAPH.replace("torch.channels_last", "torch.contiguous_format")
    assert compare.operations(other_layout) != compare.operations(GRAPH)
    dropped = GRAPH.replace("    out = conv2d.contiguous(memory_format = torch.channels_last);  conv2d = None\n", "")
    assert len(compare.operations(dropped)) == len(compare.operations(GRAPH)) - 1

"""Tidying of ONNX graphs after export and quantisation: smaller files, same computation."""

from __future__ import annotations


def strip_debug_info(proto) -> None:
    """Drop per-node debug metadata (the exporter records source stack traces) and intermediate
    shape annotations: often a third of a small model's file, and of no use at run time."""
    for node in proto.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    del proto.graph.value_info[:]


def compact_names(proto, weights: bool = False) -> None:
    """Rename nodes and intermediate tensors (and with ``weights`` the weights) to short ids
    (``n12``, ``t34``, ``w56``). The exporter's and the quantiser's names
    (``node__native_batch_norm_legit_no_training__0``, ``up5.branch.0.0.weight_zero_point``) were
    about a fifth of an int8 ENet file. Float exports keep their weight names (module paths, which
    ``--keep-float`` matches). Graph inputs and outputs keep their names. Graphs with subgraphs
    (If, Loop) are left alone."""
    graph = proto.graph
    if any(a.type in (a.GRAPH, a.GRAPHS) for n in graph.node for a in n.attribute):
        return
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    renamed: dict[str, str] = {}
    for i, init in enumerate(graph.initializer):
        if weights and init.name not in keep:
            renamed[init.name] = f"w{i}"
            init.name = f"w{i}"
        else:
            keep.add(init.name)
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        for j, name in enumerate(node.output):
            if name and name not in keep:
                renamed[name] = node.output[j] = f"t{j}_{i}"
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name in renamed:
                node.input[j] = renamed[name]

"""Small programs that tests run in a subprocess, as a user's script would be run."""

ONE_NODE_GRAPH = '''\
from typing import TypedDict
from langgraph.graph import START, StateGraph

class S(TypedDict):
    x: int

g = StateGraph(S)
g.add_node("inc", lambda s: {"x": s["x"] + 1})
g.add_edge(START, "inc")
print(g.compile(name="t").invoke({"x": 1}))
'''

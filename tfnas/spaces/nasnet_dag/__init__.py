"""NAG's NASNet-style DAG cell space: cells and their text form (``arch``), the CIFAR network
(``network``), the space (``space``, registered as ``nasnet_dag``) and the single-path
weight-sharing supernet (``supernet``)."""

from tfnas.spaces.nasnet_dag.arch import NASNET_DAG, NODE_OPS, DagCell, NasnetDagArch, make_cell, parse_arch
from tfnas.spaces.nasnet_dag.network import NasnetDagCell, NasnetDagNetwork, count_network_params
from tfnas.spaces.nasnet_dag.space import NasnetDagSpace

__all__ = ["NASNET_DAG", "NODE_OPS", "DagCell", "NasnetDagArch", "NasnetDagCell", "NasnetDagNetwork",
           "NasnetDagSpace", "count_network_params", "make_cell", "parse_arch"]

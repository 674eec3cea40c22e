"""Search spaces with their action structure and neighbour tables."""

from jaxnas.spaces.space import SearchSpace, make_space, neighbour_table

__all__ = ["SearchSpace", "make_space", "neighbour_table"]

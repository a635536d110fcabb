"""The cost of each middleware hook per task: the map in project/lifecycle, measured."""

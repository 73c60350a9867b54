"""The pure core: engine and columns, tier machine, planner, Erlang. No I/O, no clock."""

"""The floorwatch services and the `floorwatch` command."""

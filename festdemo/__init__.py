"""The festival in a box: central, gates and bars as real daemons, a crowd, a network cut."""

// Lets a library target exist before its folder has sources of its own.

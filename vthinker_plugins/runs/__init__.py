"""The one run store: file primitives (:mod:`.files`), the trajectory layout (:mod:`.trajectory`) and the
``vthinker run`` folder with its resume plan and re-scoring (:mod:`.results`)."""

"""The cluster as a whole: reaching it (:mod:`.access`), its status (:mod:`.status`), and the local
process manager behind ``asectl init``/``down`` (:mod:`.local`, :mod:`.bringup`)."""

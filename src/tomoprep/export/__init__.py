"""Writers of other programs' projects from tilt series: a RELION 5 project folder (:mod:`.relion5`,
:mod:`.relion5_tables`, :mod:`.particles`) and IMOD / AreTomo alignment files (:mod:`.imod_aretomo`); files are
linked or copied into the export folder by :mod:`.files`. The ``export`` step (:mod:`tomoprep.steps.export`) calls
them; reading a RELION 5 set back is :mod:`tomoprep.io.relion5_project`'s."""

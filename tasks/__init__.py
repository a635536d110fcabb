"""The task catalog: thin tasks that validate arguments, call plain functions, decide retry.

Each catalog module registers its tasks on :data:`project.app` with a default queue. The image,
email and maintenance tasks land here with their issues.
"""

from . import batch as _batch  # noqa: F401 - registers workflow:tolerant and batch:summary
from . import email as _email  # noqa: F401 - registers email:deliver on project.app
from . import images as _images  # noqa: F401 - registers image:* on project.app
from . import maintenance  # noqa: F401 - registers the maintenance tasks

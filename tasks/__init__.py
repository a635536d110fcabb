"""The task catalog: thin tasks that validate arguments, call plain functions, decide retry.

Each catalog module registers its tasks on :data:`project.app` with a default queue. The image,
email and maintenance tasks land here with their issues.
"""

from tasks.email import tasks as _email
from tasks.images import batch as _batch
from tasks.images import tasks as _images
from tasks.maintenance import tasks as maintenance

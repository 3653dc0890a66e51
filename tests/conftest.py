"""Settings for every tier of the suite."""

import os

# The product's AWS clients skip botocore's request-shape check in production (speed);
# under test they keep it, so a malformed request fails here rather than in DynamoDB.
os.environ.setdefault("SOCIALDESK_CHECK_AWS_REQUESTS", "1")

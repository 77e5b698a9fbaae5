"""An ElastiCache IAM authentication token as AWS's published Python examples make it
(botocore's RequestSigner, presigning `connect` for 900 s), with the clock and the
credentials fixed, to check the Rust signer against (adapters::elasticache_iam tests).

Usage: elasticache_iam_token.py CACHE USER REGION SERVERLESS(true|false) UNIX_SECONDS
       ACCESS_KEY SECRET_KEY [SESSION_TOKEN]
"""

import datetime
import sys
from unittest import mock
from urllib.parse import ParseResult, urlencode, urlunparse

import botocore.auth
import botocore.session
from botocore.credentials import Credentials
from botocore.model import ServiceId
from botocore.signers import RequestSigner

cache, user, region, serverless, unix_seconds, access_key, secret_key = sys.argv[1:8]
session_token = sys.argv[8] if len(sys.argv) > 8 else None

signer = RequestSigner(
    ServiceId("elasticache"),
    region,
    "elasticache",
    "v4",
    Credentials(access_key, secret_key, session_token),
    botocore.session.get_session().get_component("event_emitter"),
)
query = {"Action": "connect", "User": user}
if serverless == "true":
    query["ResourceType"] = "ServerlessCache"
url = urlunparse(
    ParseResult(scheme="https", netloc=cache, path="/", query=urlencode(query), params="", fragment="")
)
now = datetime.datetime.fromtimestamp(int(unix_seconds), datetime.timezone.utc).replace(tzinfo=None)
with mock.patch.object(botocore.auth.datetime, "datetime") as clock:
    clock.utcnow.return_value = now
    clock.now.return_value = now
    signed = signer.generate_presigned_url(
        {"method": "GET", "url": url, "body": {}, "headers": {}, "context": {}},
        operation_name="connect",
        expires_in=900,
        region_name=region,
    )
print(signed.removeprefix("https://"))

"""The baseline product-api is judged against: the cache-aside Lambda the blog posts publish.

A Python handler on the Lambda runtime interface client (awslambdaric, the code of AWS's
own Python runtime), redis-py and boto3, clients made at import time as those posts do:
GET the key; on a miss, GetItem, json.dumps, SETEX for 300 s. No lease, no ETag, no
metrics, no stale-refill protection. `make bench` runs it beside product-api behind the
same local Runtime API, against the same Redis and table, under its own key prefix so
that the two never read each other's values.

Environment: REDIS_URL (redis://host:port), TABLE_NAME, and the AWS SDK's own variables
(region, credentials, AWS_ENDPOINT_URL_DYNAMODB).
"""

import json
import os
from decimal import Decimal

import boto3
import redis

TTL_SECONDS = 300
KEY_PREFIX = "demo:product:"

cache = redis.Redis.from_url(os.environ["REDIS_URL"])
table = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def _number(value):
    # boto3 reads every DynamoDB number as a Decimal, which json cannot write.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _answer(status, body):
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": body,
    }


def handler(event, _context):
    product_id = (event.get("pathParameters") or {}).get("productId")
    if not product_id:
        return _answer(400, json.dumps({"message": "productId is required"}))
    key = KEY_PREFIX + product_id
    cached = cache.get(key)
    if cached is not None:
        return _answer(200, cached.decode())
    item = table.get_item(Key={"productId": product_id}).get("Item")
    if item is None:
        return _answer(404, json.dumps({"message": "product not found"}))
    body = json.dumps(item, default=_number)
    cache.setex(key, TTL_SECONDS, body)
    return _answer(200, body)

"""A real S3 API on loopback (moto's server), for the tests and the local stack."""

from __future__ import annotations

import json
from typing import Any

import boto3

REGION = "eu-west-2"
# moto accepts any credentials; these are not secrets.
ACCESS_KEY = "totes-local"
# moto accepts any key: this is not a secret.
SECRET_KEY = "totes-local-secret"  # noqa: S105  # nosec B105


def client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3", endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )


def create_buckets(endpoint_url: str, *buckets: str) -> None:
    s3 = client(endpoint_url)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for b in buckets:
        if b not in existing:
            s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})


def airflow_connection(endpoint_url: str) -> str:
    """The aws_default connection (JSON form of AIRFLOW_CONN_AWS_DEFAULT) for this endpoint."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"endpoint_url": endpoint_url, "region_name": REGION},
        }
    )


class ThreadedS3Server:
    """moto's HTTP server in a thread of this process, on 127.0.0.1 and a free port."""

    def __init__(self, port: int) -> None:
        from moto.server import ThreadedMotoServer

        self.port = port
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


def sqs_client(endpoint_url: str) -> Any:
    return boto3.client(
        "sqs", endpoint_url=endpoint_url, region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY
    )


def notify_queue(endpoint_url: str, bucket: str, prefix: str, queue: str) -> str:
    """An SQS queue that receives the bucket's ObjectCreated notifications under ``prefix``, as
    terraform/mwaa sets it up on AWS (moto's S3 sends them to its own SQS); the queue's URL."""
    sqs = sqs_client(endpoint_url)
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client(endpoint_url).put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
            ]
        },
    )
    return url

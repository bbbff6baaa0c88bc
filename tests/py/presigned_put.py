"""A browser-style direct upload, as a backoffice does it: boto3 presigns a PUT with a
Content-Type, then a plain HTTP client (no credentials) uploads with that URL.

usage: presigned_put.py ENDPOINT ACCESS_KEY SECRET BUCKET KEY CONTENT_TYPE BODY
Prints the HTTP status of the upload.
"""
import sys
import urllib.request

import boto3
from botocore.config import Config


def main():
    endpoint, access_key, secret, bucket, key, content_type, body = sys.argv[1:8]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, "ContentType": content_type}, ExpiresIn=300
    )
    req = urllib.request.Request(url, data=body.encode(), method="PUT", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req) as resp:
            print(resp.status)
    except urllib.error.HTTPError as e:
        print(e.code)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The bucket store driven by the clients users already have: boto3 and the aws cli.

Every flow of the bucket-store issue, as those clients run it, against a running homefront
(`tests/compat.rs` starts one and runs this script; run it by hand against your own with the
arguments below). Exits non-zero at the first mismatch, naming the step.

  python3 tests/compat/s3_clients.py --endpoint http://127.0.0.1:9000 \
      --edge http://127.0.0.1:8080 --access-key KEY --secret SECRET [--bucket site]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

args = argparse.ArgumentParser()
args.add_argument("--endpoint", required=True)
args.add_argument("--edge", required=True)
args.add_argument("--access-key", required=True)
args.add_argument("--secret", required=True)
args.add_argument("--bucket", default="site")
opts = args.parse_args()
B = opts.bucket

s3 = boto3.client(
    "s3",
    endpoint_url=opts.endpoint,
    aws_access_key_id=opts.access_key,
    aws_secret_access_key=opts.secret,
    region_name="us-east-1",
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
step_name = "start"


def step(name):
    global step_name
    step_name = name
    print(f"-- {name}", flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(f"{step_name}: {what}")


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def aws(*argv, ok=True):
    env = dict(
        os.environ,
        AWS_ACCESS_KEY_ID=opts.access_key,
        AWS_SECRET_ACCESS_KEY=opts.secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
    )
    p = subprocess.run(
        ["aws", "--endpoint-url", opts.endpoint, "--output", "json", *argv],
        capture_output=True, text=True, env=env,
    )
    if ok and p.returncode != 0:
        raise AssertionError(f"{step_name}: aws {' '.join(argv)} failed: {p.stderr}")
    return p


def error_code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


work = tempfile.mkdtemp()

step("boto3: put, head, get, list, metadata")
s3.put_object(Bucket=B, Key="compat/a.txt", Body=b"alpha", ContentType="text/plain",
              Metadata={"owner": "compat"}, CacheControl="max-age=60")
h = s3.head_object(Bucket=B, Key="compat/a.txt")
check(h["ContentLength"] == 5 and h["ContentType"] == "text/plain", h)
check(h["Metadata"] == {"owner": "compat"}, h["Metadata"])
check(h["ETag"] == '"%s"' % hashlib.md5(b"alpha").hexdigest(), h["ETag"])
check(s3.get_object(Bucket=B, Key="compat/a.txt")["Body"].read() == b"alpha", "body")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="compat/")["Contents"]]
check(keys == ["compat/a.txt"], keys)

step("boto3: range and conditional GET")
r = s3.get_object(Bucket=B, Key="compat/a.txt", Range="bytes=1-3")
check(r["Body"].read() == b"lph" and r["ContentRange"] == "bytes 1-3/5", r["ContentRange"])
try:
    s3.get_object(Bucket=B, Key="compat/a.txt", IfNoneMatch=h["ETag"])
    check(False, "If-None-Match with the current ETag must be 304")
except ClientError as e:
    check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, e.response)
check(error_code(lambda: s3.get_object(Bucket=B, Key="compat/a.txt", Range="bytes=9-")) == "InvalidRange", "416")

step("boto3: multipart upload_file (8 MiB in 5 MiB parts) and download_file")
big = os.path.join(work, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(8 << 20))
from boto3.s3.transfer import TransferConfig
tc = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
s3.upload_file(big, B, "compat/big.bin", Config=tc)
h = s3.head_object(Bucket=B, Key="compat/big.bin")
check(h["ETag"].strip('"').endswith("-2"), f"multipart ETag {h['ETag']}")
back = os.path.join(work, "big.back")
s3.download_file(B, "compat/big.bin", back, Config=tc)
check(open(big, "rb").read() == open(back, "rb").read(), "downloaded bytes differ")

step("boto3: copy, tagging, batch delete")
s3.copy_object(Bucket=B, Key="compat/b.txt", CopySource={"Bucket": B, "Key": "compat/a.txt"})
s3.put_object_tagging(Bucket=B, Key="compat/b.txt",
                      Tagging={"TagSet": [{"Key": "team", "Value": "web"}]})
tags = s3.get_object_tagging(Bucket=B, Key="compat/b.txt")["TagSet"]
check(tags == [{"Key": "team", "Value": "web"}], tags)
out = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "compat/b.txt"}, {"Key": "compat/big.bin"}]})
check(sorted(d["Key"] for d in out["Deleted"]) == ["compat/b.txt", "compat/big.bin"], out)

step("boto3: presigned PUT with Content-Type, then GET through the edge")
url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "compat/upload.json",
                                                     "ContentType": "application/json"}, ExpiresIn=300)
status, _, body = http("PUT", url, b'{"from": "python"}', {"Content-Type": "text/plain"})
check(status == 403 and b"SignatureDoesNotMatch" in body and b"content-type" in body.lower(),
      f"a different Content-Type must be refused and named: {status} {body[:300]}")
status, _, body = http("PUT", url, b'{"from": "python"}', {"Content-Type": "application/json"})
check(status == 200, f"presigned PUT: {status} {body[:300]}")
status, headers, body = http("GET", f"{opts.edge}/compat/upload.json")
check(status == 200 and body == b'{"from": "python"}', f"edge GET: {status} {body[:200]}")
check(headers.get("Content-Type") == "application/json", headers)
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "compat/upload.json"}, ExpiresIn=60)
status, _, body = http("GET", url)
check(status == 200 and body == b'{"from": "python"}', f"presigned GET: {status}")
sig = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
tampered = sig[:-1] + ("0" if sig[-1] != "0" else "1")
status, _, body = http("GET", url.replace(sig, tampered))
check(status == 403 and b"SignatureDoesNotMatch" in body, f"tampered presigned GET: {status}")

step("boto3: canned ACL public-read opens anonymous reads of that object only")
s3.put_object(Bucket=B, Key="compat/public.txt", Body=b"hi all", ACL="public-read")
status, _, body = http("GET", f"{opts.endpoint}/{B}/compat/public.txt")
check(status == 200 and body == b"hi all", f"anonymous GET of a public-read object: {status}")
status, _, body = http("GET", f"{opts.endpoint}/{B}/compat/a.txt")
check(status == 403 and b"AccessDenied" in body, f"anonymous GET of a private object: {status}")

step("boto3: bucket CORS and a preflight")
s3.put_bucket_cors(Bucket=B, CORSConfiguration={"CORSRules": [{
    "AllowedOrigins": ["https://admin.example.com"], "AllowedMethods": ["PUT", "GET"],
    "AllowedHeaders": ["content-type"], "MaxAgeSeconds": 600}]})
rules = s3.get_bucket_cors(Bucket=B)["CORSRules"]
check(rules[0]["AllowedOrigins"] == ["https://admin.example.com"], rules)
status, headers, _ = http("OPTIONS", f"{opts.endpoint}/{B}/compat/x", headers={
    "Origin": "https://admin.example.com", "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "Content-Type"})
check(status == 200 and headers.get("Access-Control-Allow-Origin") == "https://admin.example.com", dict(headers))
status, _, _ = http("OPTIONS", f"{opts.endpoint}/{B}/compat/x", headers={
    "Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"})
check(status == 403, f"disallowed preflight: {status}")
s3.delete_bucket_cors(Bucket=B)

step("aws cli: s3 cp (multipart), ls, sync, rm")
p = aws("s3", "cp", big, f"s3://{B}/cli/big.bin")
p = aws("s3", "ls", f"s3://{B}/cli/")
check("big.bin" in p.stdout, p.stdout)
src = os.path.join(work, "site")
os.makedirs(os.path.join(src, "css"))
for name, text in [("index.html", "<h1>hi</h1>"), ("css/app.css", "body{}")]:
    with open(os.path.join(src, name), "w") as f:
        f.write(text)
aws("s3", "sync", src, f"s3://{B}/cli/site/")
status, headers, body = http("GET", f"{opts.edge}/cli/site/css/app.css")
check(status == 200 and body == b"body{}", f"synced file through the edge: {status}")
check(headers.get("Content-Type", "").startswith("text/css"), headers)
aws("s3", "rm", "--recursive", f"s3://{B}/cli/")
p = aws("s3", "ls", f"s3://{B}/cli/", ok=False)
check("big.bin" not in p.stdout, p.stdout)

step("aws cli: versioning, a bad delete, and the restore with copy-object")
aws("s3api", "put-bucket-versioning", "--bucket", B, "--versioning-configuration", "Status=Enabled")
v = json.loads(aws("s3api", "get-bucket-versioning", "--bucket", B).stdout)
check(v.get("Status") == "Enabled", v)
for text in ["v1", "v2"]:
    path = os.path.join(work, "report.txt")
    with open(path, "w") as f:
        f.write(text)
    aws("s3", "cp", path, f"s3://{B}/compat/report.txt")
aws("s3", "rm", f"s3://{B}/compat/report.txt")
p = aws("s3api", "head-object", "--bucket", B, "--key", "compat/report.txt", ok=False)
check(p.returncode != 0 and "404" in p.stderr, p.stderr)
listed = json.loads(aws("s3api", "list-object-versions", "--bucket", B, "--prefix", "compat/report.txt").stdout)
versions = listed["Versions"]
check([x["IsLatest"] for x in versions] == [False, False], versions)
check(len(listed["DeleteMarkers"]) == 1 and listed["DeleteMarkers"][0]["IsLatest"], listed)
newest = versions[0]["VersionId"]
out = json.loads(aws("s3api", "copy-object", "--bucket", B, "--key", "compat/report.txt",
                     "--copy-source", f"{B}/compat/report.txt?versionId={newest}").stdout)
check(out.get("CopySourceVersionId") == newest, out)
got = os.path.join(work, "got.txt")
aws("s3api", "get-object", "--bucket", B, "--key", "compat/report.txt", got)
check(open(got).read() == "v2", "restored content")
older = versions[1]["VersionId"]
aws("s3api", "get-object", "--bucket", B, "--key", "compat/report.txt", "--version-id", older, got)
check(open(got).read() == "v1", "older version")
status, _, body = http("GET", f"{opts.edge}/compat/report.txt")
check(status == 200 and body == b"v2", f"restored file through the edge: {status} {body[:100]}")
aws("s3api", "delete-object", "--bucket", B, "--key", "compat/report.txt", "--version-id", older)
listed = json.loads(aws("s3api", "list-object-versions", "--bucket", B, "--prefix", "compat/report.txt").stdout)
check(older not in [x["VersionId"] for x in listed["Versions"]], listed)
aws("s3api", "put-bucket-versioning", "--bucket", B, "--versioning-configuration", "Status=Suspended")

print("all S3 client flows passed")

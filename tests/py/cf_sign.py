"""Sign CloudFront URLs with botocore's real CloudFrontSigner (used by tests/signed.rs).

usage: cf_sign.py PRIVATE_KEY_PEM KEY_PAIR_ID URL EXPIRES_EPOCH [RESOURCE IP NOT_BEFORE_EPOCH]
With the optional arguments, a custom policy built by botocore's build_policy is used.
The RSA signer is the one django-storages and the botocore docs use: PKCS#1 v1.5 + SHA-1.
"""
import datetime
import sys

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def utc(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).replace(tzinfo=None)


def main():
    key_file, key_id, url, expires = sys.argv[1:5]
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    signer = CloudFrontSigner(key_id, lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1()))
    if len(sys.argv) > 5:
        resource, ip, not_before = sys.argv[5:8]
        policy = signer.build_policy(resource, utc(expires), date_greater_than=utc(not_before), ip_address=ip)
        print(signer.generate_presigned_url(url, policy=policy))
    else:
        print(signer.generate_presigned_url(url, date_less_than=utc(expires)))


if __name__ == "__main__":
    main()

def test_moto_bucket_roundtrip(s3_client, bucket):
    s3_client.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hi")
    got = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in got] == ["a/b.txt"]

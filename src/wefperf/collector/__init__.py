"""The reference WEF collector and its embedded S3 server."""

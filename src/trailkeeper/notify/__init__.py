"""Notifications (issue #11): how trailkeeper tells people. `signing` signs and verifies SNS
messages as Amazon SNS does (SignatureVersion 2, SHA256withRSA, a certificate served at
SigningCertURL); `alarm_message` is the CloudWatch alarm notification an SNS topic carries."""

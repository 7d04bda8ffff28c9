"""SQS glue: provider event schemas and the batch consumer (the queue's counterpart of http/)."""

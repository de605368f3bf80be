"""The web service for people (CONTRACT §9): the seller dashboard, apart from the stream
workers. It reads the views the workers keep in Redis and publishes commands (appeals)
to input topics; it never changes enforcement state itself."""

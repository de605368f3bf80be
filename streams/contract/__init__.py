"""What Warden shares with the systems around it, with no Faust and no Kafka client: the
settings (the environment), the topics' names, the sign-in tokens and the Redis views'
keys. The web service and the tools depend on these without depending on the stream
shell."""

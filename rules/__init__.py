"""Pure decision logic: policy, metric definitions, calendar and the enforcement rules.

Imports no Faust, Redis or Kafka: plain Python over plain data.
"""

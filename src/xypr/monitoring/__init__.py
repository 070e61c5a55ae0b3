"""What operators watch: running processes, backend health, queues, throughput, failures."""

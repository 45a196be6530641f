"""The scheduled quote poller Lambda: a quote API polled on an EventBridge schedule into the stream."""

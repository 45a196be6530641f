"""Outbound HTTP shared by the quote pollers and the alert webhook."""

"""The chart builder (next): candlestick charts from bars, published as a static site."""

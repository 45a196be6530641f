"""The chart builder: candlestick charts from bars, published as a static site."""

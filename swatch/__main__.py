from swatch.cli import main

main()

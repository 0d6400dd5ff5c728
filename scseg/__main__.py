from scseg.cli import main

main()

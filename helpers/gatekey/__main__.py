"""`python -m gatekey`: the same as the `gatekey` executable."""

from gatekey.fastpath import main

main()

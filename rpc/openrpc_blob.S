/* schemas/openrpc.json, built into slotd so rpc.discover and params
 * validation always match the binary. */
	.section .rodata
	.global slotd_openrpc_json
	.type slotd_openrpc_json, @object
slotd_openrpc_json:
	.incbin "schemas/openrpc.json"
	.byte 0
	.size slotd_openrpc_json, . - slotd_openrpc_json
	.section .note.GNU-stack,"",@progbits

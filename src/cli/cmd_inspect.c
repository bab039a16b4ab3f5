/* cmd_inspect.c: placeholder removed by the GGUF work (being written now). */
#include "cli/commands.h"
int bn_cmd_inspect(int argc, char **argv, bn_error *err) { (void)argc; (void)argv; return bn_error_set(err, BN_ERR_STATE, "x"), 1; }

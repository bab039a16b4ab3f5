/*
 * webui.h: the bytes of the chat page served at GET / (webui.c). The page is kept as a real file,
 * src/server/webui/chat.html; the build turns it into a C array (cmake/embed_file.cmake), so the
 * binary needs nothing on disk and nothing from the network to serve it.
 */
#ifndef BN_SERVER_WEBUI_H
#define BN_SERVER_WEBUI_H

#include <stddef.h>

/* The page's bytes followed by a 0 (so it is also a C string); _len excludes the 0. */
extern const unsigned char bn_webui_chat_html[];
extern const size_t bn_webui_chat_html_len;

#endif

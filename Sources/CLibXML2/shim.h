#ifndef QDWALLET_CLIBXML2_SHIM_H
#define QDWALLET_CLIBXML2_SHIM_H

#include <libxml/xmlversion.h>
/* Debian's libxml2 is built with ICU, and its headers would then pull in ICU's, which clash
 * with the ICU that Foundation carries. Nothing here touches the ICU-dependent fields of
 * xmlCharEncodingHandler, so the headers are read without them. */
#undef LIBXML_ICU_ENABLED

#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <libxml/xmlschemas.h>
#include <libxml/xmlerror.h>

/* xmlFree is a global function pointer, which Swift 6 treats as shared mutable state. */
static inline void qdw_xml_free(void *pointer) {
    xmlFree(pointer);
}

#endif

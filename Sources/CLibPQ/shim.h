#ifndef QDWALLET_CLIBPQ_SHIM_H
#define QDWALLET_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif

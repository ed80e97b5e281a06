/* in progress */
#include <stddef.h>

// Consumer of an installed polymath: proves that find_package(polymath) gives
// working include paths, C++20 and the dependencies' usage requirements.
#include <iostream>
#include <string>

#include <polymath/core/error.hpp>

int main() {
    try {
        POLYMATH_CHECK(1 + 1 == 3, "consumer", "arithmetic is broken: ", 1 + 1, " != ", 3);
    } catch (const polymath::Error& e) {
        const std::string msg = e.what();
        if (msg.find("consumer: arithmetic is broken: 2 != 3") == std::string::npos) {
            std::cerr << "unexpected message: " << msg << '\n';
            return 1;
        }
        std::cout << "polymath consumer OK (caught: " << msg << ")\n";
        return 0;
    }
    std::cerr << "POLYMATH_CHECK did not throw\n";
    return 1;
}
